  <rasterrenderer type="singlebandgray" opacity="1" alphaBand="-1" grayBand="$band" gradient="BlackToWhite" nodataColor="">
   <minMaxOrigin>
    <limits>None</limits>
    <extent>WholeRaster</extent>
    <statAccuracy>Estimated</statAccuracy>
    <cumulativeCutLower>0.02</cumulativeCutLower>
    <cumulativeCutUpper>0.98</cumulativeCutUpper>
    <stdDevFactor>2</stdDevFactor>
   </minMaxOrigin>
   <contrastEnhancement>
    <minValue>$vmin</minValue>
    <maxValue>$vmax</maxValue>
    <algorithm>StretchToMinimumMaximum</algorithm>
   </contrastEnhancement>
  </rasterrenderer>
