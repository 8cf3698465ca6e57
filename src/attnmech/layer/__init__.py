"""The trained attention layer (torch): model, step rules, training, metrics, verification."""
