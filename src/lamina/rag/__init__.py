"""Grounding: data layer + model layer → answers that cite the user's documents.

Sits above both layers and below the interfaces; neither layer imports it.
"""
