  <rasterrenderer type="paletted" opacity="1" alphaBand="-1" band="1" nodataColor="">
   <colorPalette>
$entries
   </colorPalette>
  </rasterrenderer>
