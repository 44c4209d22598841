"""What happened: session and statement records, written in order and in batches to the store."""
