"""The web dashboard, served by the API server under /ui/ (control/ui/app.py)."""
