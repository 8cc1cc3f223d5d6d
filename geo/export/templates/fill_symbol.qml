   <symbol type="fill" name="$name" alpha="1" clip_to_extent="1" force_rhr="0">
    <layer class="SimpleFill" enabled="1" pass="0" locked="0">
     <Option type="Map">
      <Option type="QString" name="color" value="$fill_rgba"/>
      <Option type="QString" name="style" value="$fill_style"/>
      <Option type="QString" name="outline_color" value="$outline_rgba"/>
      <Option type="QString" name="outline_style" value="solid"/>
      <Option type="QString" name="outline_width" value="$outline_width"/>
      <Option type="QString" name="outline_width_unit" value="MM"/>
      <Option type="QString" name="joinstyle" value="miter"/>
     </Option>
    </layer>
   </symbol>
