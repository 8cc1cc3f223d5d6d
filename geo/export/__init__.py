"""Writers for what the run leaves behind: GeoJSON, GPKG, COG, QML, report."""
