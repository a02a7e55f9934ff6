"""ContrastGeo command line: ``contrastgeo --help`` lists the subcommands."""
