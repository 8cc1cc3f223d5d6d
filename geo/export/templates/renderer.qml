 <renderer-v2 type="categorizedSymbol" attr="$attr" symbollevels="0" forceraster="0" enableorderby="0" referencescale="-1">
  <categories>
$categories
  </categories>
  <symbols>
$symbols
  </symbols>
  <rotation/>
  <sizescale/>
 </renderer-v2>
