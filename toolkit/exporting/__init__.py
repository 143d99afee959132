"""Export: the exporter contract and its registry of targets, the device program, the transaction and its measurements."""
