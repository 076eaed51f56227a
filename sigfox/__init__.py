"""The Sigfox uplink contract (DESIGN section 1), in the order an uplink meets it.

- `limits`: Sigfox's numbers (sequence modulo, 140 a day, 12 bytes, the device-id patterns);
- `topics`: `<prefix>/<type>/<device>`;
- `envelope`: the JSON body;
- `sequence`: 12-bit sequence arithmetic (gaps, loss).
"""
