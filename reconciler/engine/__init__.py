"""The part written once: planning, applying and rendering, above the resource interface."""
