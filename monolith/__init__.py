"""The legacy polls monolith that strangler carves services out of."""
