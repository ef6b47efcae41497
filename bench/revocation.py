"""`python -m bench.revocation`: the former name of `python -m bench.limits`, which measures the revocation check
(GET /auth/me with and without it) among the other limits. Kept so existing commands and notes still work."""
from .limits import main

if __name__ == "__main__":
    main()
