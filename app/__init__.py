"""The lesionbn Streamlit app: presentation only (every number comes from model/'s public API)."""
