"""The recommendation task: MovieLens-style interactions, SASRec/GRU4Rec/DIN, slots on an MLP head (light: imports nothing)."""
