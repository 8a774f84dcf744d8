"""The app's pages: diagnose (findings, posterior, next tests, explanation) and model."""
