"""What a statement is and what may happen to it. Pure: no I/O, no store, no asyncio."""
