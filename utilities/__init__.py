"""The ground floor: plumbing every app shares, importing none of them.

Accepted text (`text`), currency codes (`currencies`), input limits (`inputs`),
CSV downloads (`csv`), the client's address (`client_address`), and what only the
API uses (`api`). Apps and the project package import from here; nothing here
imports an app or the project.
"""
