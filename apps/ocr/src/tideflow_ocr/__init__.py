"""Video OCR at scale, built on Tideflow."""
