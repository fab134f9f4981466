"""Shared test fixtures and helpers (real servers, real data)."""
