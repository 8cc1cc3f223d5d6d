 <labeling type="simple">
  <settings calloutType="simple">
   <text-style fieldName="$expression" isExpression="1" fontFamily="DejaVu Sans" fontSize="8" fontSizeUnit="Point" fontWeight="75" textColor="20,20,20,255" textOpacity="1" multilineHeight="1" allowHtml="0" capitalization="0" blendMode="0" fontItalic="0" fontUnderline="0" fontStrikeout="0" fontKerning="1" fontLetterSpacing="0" fontWordSpacing="0" textOrientation="horizontal" useSubstitutions="0" namedStyle="">
    <text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" bufferColor="255,255,255,230" bufferOpacity="1" bufferNoFill="1" bufferJoinStyle="128" bufferBlendMode="0"/>
   </text-style>
   <text-format multilineAlign="1" wrapChar="" autoWrapLength="0" useMaxLineLengthForAutoWrap="1" formatNumbers="0" decimals="3" plussign="0" addDirectionSymbol="0"/>
   <placement placement="1" centroidInside="1" centroidWhole="0" fitInPolygonOnly="0" quadOffset="4" dist="0" distUnits="MM" offsetType="0" priority="$priority" xOffset="0" yOffset="0" offsetUnits="MM" rotationAngle="0" preserveRotation="1" layerType="PolygonGeometry" polygonPlacementFlags="2" placementFlags="10"/>
   <rendering drawLabels="1" displayAll="0" obstacle="1" obstacleType="1" obstacleFactor="1" labelPerPart="0" mergeLines="0" minFeatureSize="0" limitNumLabels="0" maxNumLabels="2000" scaleVisibility="0" scaleMin="0" scaleMax="0" upsidedownLabels="0" fontLimitPixelSize="0" fontMinPixelSize="0" fontMaxPixelSize="10000" zIndex="0" unplacedVisibility="0"/>
  </settings>
 </labeling>
