"""Stich: the data layer of an AI app-generation platform."""

__version__ = "0.1.0"
