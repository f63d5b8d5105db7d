"""The dashboard's templates and static files, shipped in the package (routers/dashboard.py serves them)."""
