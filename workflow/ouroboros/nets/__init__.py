"""Neural networks of the torch targets, one module each (torch is imported there, never by the registry)."""
