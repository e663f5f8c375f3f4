"""Shared foundations: input checks, errors, typed containers, paths. Imports nothing of ours."""
