"""HTTP to providers: pooled sessions, request preparation, retries, transport errors.

`send.send` is the one entry point; the policy (retry.py, errors.py) is plain functions
that another transport can share.
"""
