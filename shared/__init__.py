"""Shared core of the retail data platform: contracts, settings, clients and the logic the
thin function, job and CLI entry points call."""
