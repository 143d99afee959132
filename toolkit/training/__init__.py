"""Training a run (Base, then DUET), across processes, and the run directory it writes and the service reads."""
