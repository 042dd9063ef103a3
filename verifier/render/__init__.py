"""Renderers: terminal text, JSON, charts."""
