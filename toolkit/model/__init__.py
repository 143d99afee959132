"""The model side: slots on any module of a PyTorch model, and the generator (hypernetwork) that writes them."""
