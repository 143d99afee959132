"""`cli.py bench`: what personalisation costs and buys, on this host and on a phone, as benchmark records."""
