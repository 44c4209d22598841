"""Wire protocols, sans-IO: bytes in, events out. Nothing here opens a socket or imports the rest of wardgate."""
