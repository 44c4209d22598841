"""The HTTP API: reviewers' interface and exec, for people and programs that do not speak the database wire."""
