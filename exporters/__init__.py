"""Exporters: one module per device runtime behind one contract, listed in an explicit registry."""
