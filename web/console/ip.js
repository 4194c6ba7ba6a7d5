// Client-side check of the IP allow list with the API's rules (Go's
// net/netip): each entry is an IPv4 or IPv6 address, or a CIDR range
// "address/bits"; no zone ("%eth0"); IPv4 is four decimal parts 0-255
// without leading zeros; bits are 0-32 (IPv4) or 0-128 (IPv6) without
// leading zeros. Entries are separated by newlines or commas.

function isIPv4(s) {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(s) {
  if (s.includes('%')) return false; // zones are refused
  let groups = 0;
  let head = s;
  // An embedded IPv4 tail counts as two groups.
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.slice(lastColon + 1).includes('.')) {
    if (!isIPv4(s.slice(lastColon + 1))) return false;
    head = s.slice(0, lastColon + 1);
    if (head.endsWith('::')) {
      // "::1.2.3.4" style: keep the "::".
    } else {
      head = head.slice(0, -1);
    }
    groups += 2;
  }
  const halves = head.split('::');
  if (halves.length > 2) return false;
  const count = (h) => {
    if (h === '') return 0;
    const gs = h.split(':');
    if (!gs.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return -1;
    return gs.length;
  };
  if (halves.length === 2) {
    const a = count(halves[0]);
    const b = count(halves[1]);
    if (a < 0 || b < 0) return false;
    return a + b + groups <= 7;
  }
  const n = count(halves[0]);
  return n >= 0 && n + groups === 8;
}

/** isIPEntry reports whether s is an address or a CIDR range the API accepts. */
export function isIPEntry(s) {
  const slash = s.indexOf('/');
  if (slash < 0) return isIPv4(s) || isIPv6(s);
  const addr = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return false;
  if (isIPv4(addr)) return Number(bits) <= 32;
  if (isIPv6(addr)) return Number(bits) <= 128;
  return false;
}

/** ipEntries splits an allow list into its trimmed, non-empty entries. */
export function ipEntries(text) {
  return text.split(/[\n\r,]/).map((s) => s.trim()).filter((s) => s !== '');
}

/** invalidIPEntries returns the entries of text the API would refuse. */
export function invalidIPEntries(text) {
  return ipEntries(text).filter((e) => !isIPEntry(e));
}
