"""Who is asking: credentials, principals and sign-in."""
