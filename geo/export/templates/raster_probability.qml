  <rasterrenderer type="singlebandpseudocolor" opacity="1" alphaBand="-1" band="1" classificationMin="0" classificationMax="1" nodataColor="">
   <minMaxOrigin>
    <limits>None</limits>
    <extent>WholeRaster</extent>
    <statAccuracy>Estimated</statAccuracy>
    <cumulativeCutLower>0.02</cumulativeCutLower>
    <cumulativeCutUpper>0.98</cumulativeCutUpper>
    <stdDevFactor>2</stdDevFactor>
   </minMaxOrigin>
   <rastershader>
    <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" minimumValue="0" maximumValue="1" clip="0" labelPrecision="2">
$items
    </colorrampshader>
   </rastershader>
  </rasterrenderer>
