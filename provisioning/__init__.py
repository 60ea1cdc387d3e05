"""Installer tools: device identity, enrolment, config writing and first-boot images."""
