"""The archive service: search, IVOA services and LAMOST-style data access over the release store."""
