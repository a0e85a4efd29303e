"""Measured runs with printed figures (`make bench`); timings never become test assertions."""
