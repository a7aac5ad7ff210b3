"""Ranking generated images (thesis 2.4.2): scorers, their order, the `rank` stage."""
