"""Reviews: statements a rule holds until people approve them. ``model`` is the pure rule book (who may vote,
what the votes add up to); the store keeps the requests and votes, so any replica and the CLI see one state."""
