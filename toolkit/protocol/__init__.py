"""The device protocol every client shares: tensor and slot specs, slot blobs, request bodies, the manifest, signing, TLS, URL paths."""
