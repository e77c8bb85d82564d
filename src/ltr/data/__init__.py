"""Data layer: LETOR files, query slates, feature normalization, synthetic data."""
