"""The user's side of OIDC: `wardgate login` flows, the stored tokens, and keeping them fresh."""
