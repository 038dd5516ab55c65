// Checks, in the browser, that every record on the page is in the signed log: the
// latest checkpoint's Ed25519 signature against the public key the page was given,
// then each record's RFC 9162 inclusion proof up to that checkpoint's root, hashing
// the leaf document the server sent (SHA-256 through WebCrypto).
"use strict";

const utf8 = new TextEncoder();

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text) {
  return Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
}

// What the page's data requests add to name its log: a partition of a partitioned
// ledger ("partition=K"), or nothing for a ledger of one log.
function logQuery(separator) {
  const meta = document.querySelector('meta[name="ledger-log"]');
  return meta && meta.content ? separator + meta.content : "";
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

// The verifier key's name, id and Ed25519 key, from its text: name+id+key, where the
// key's base64 may hold "+" too, so only the first two split.
async function verifierKey(vkey) {
  const first = vkey.indexOf("+");
  const second = vkey.indexOf("+", first + 1);
  const [name, keyId, encoded] = [vkey.slice(0, first), vkey.slice(first + 1, second),
    vkey.slice(second + 1)];
  const raw = fromBase64(encoded);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error("the public key is not Ed25519");
  const id = (await sha256(concat(utf8.encode(name + "\n"), raw))).slice(0, 4);
  if (hex(id) !== keyId) throw new Error("the public key's id does not match it");
  const key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false,
    ["verify"]);
  return { name, id, key };
}

// A checkpoint note's origin, size and root, if the verifier's signature on it holds.
async function openNote(note, verifier) {
  const cut = note.indexOf("\n\n");
  if (cut < 0) throw new Error("the checkpoint has no signature");
  const body = note.slice(0, cut + 1);
  const [origin, size, root] = body.split("\n");
  const line = note.slice(cut + 2).split("\n")
    .find((l) => l.startsWith(`\u2014 ${verifier.name} `));
  if (!line) throw new Error("the checkpoint is not signed by this key");
  const signed = fromBase64(line.split(" ")[2]);
  if (!same(signed.slice(0, 4), verifier.id)) throw new Error("the signature's key id is not this key's");
  const holds = await crypto.subtle.verify({ name: "Ed25519" }, verifier.key, signed.slice(4),
    utf8.encode(body));
  if (!holds) throw new Error("the checkpoint's signature does not hold");
  return { origin, size: Number(size), root: fromBase64(root) };
}

// The latest signed checkpoint, if the verifier key signed it; a partition's comes with
// its link to the whole ledger's checkpoint, which is checked too.
async function signedCheckpoint(vkey) {
  const verifier = await verifierKey(vkey);
  const found = await getJson(`/console/data/checkpoint${logQuery("?")}`);
  const checkpoint = await openNote(found.note, verifier);
  if (found.top) {
    await checkTopLink(found.top, checkpoint, verifier);
    checkpoint.whole = true;
  }
  return checkpoint;
}

// That a partition's checkpoint is the leaf the signed checkpoint of the whole ledger
// holds for it: the top note's signature, the leaf's body, and its inclusion proof.
async function checkTopLink(link, checkpoint, verifier) {
  const top = await openNote(link.note, verifier);
  const [origin, size, root] = link.leaf.split("\n");
  if (origin !== `${verifier.name}/partition/${link.partition}`
      || link.index !== link.partition + 1) {
    throw new Error(`the ledger's checkpoint names ${origin} where this partition should be`);
  }
  if (Number(size) !== checkpoint.size || !same(fromBase64(root), checkpoint.root)) {
    throw new Error("the ledger's checkpoint holds another checkpoint of this partition");
  }
  const leafHash = await sha256(concat(Uint8Array.of(0), utf8.encode(link.leaf)));
  const reached = await rootFromProof(link.index, top.size, leafHash, link.proof.map(fromHex));
  if (!same(reached, top.root)) {
    throw new Error("the partition's checkpoint is not in the ledger's signed checkpoint");
  }
}

// RFC 9162 section 2.1.4.2: a consistency proof from an old tree to a new one.
async function checkConsistency(first, second, proof) {
  const [m, n] = [first.size, second.size];
  if (m > n) throw new Error("the later checkpoint is smaller");
  if (m === n) {
    if (proof.length || !same(first.root, second.root)) throw new Error("same size, other root");
    return;
  }
  if (!proof.length) throw new Error("the proof is empty");
  const path = (m & (m - 1)) === 0 ? [first.root, ...proof] : proof.slice();
  let fn = m - 1;
  let sn = n - 1;
  while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) throw new Error("the proof is too long");
    if (fn % 2 === 1 || fn === sn) {
      fr = await sha256(concat(Uint8Array.of(1), c, fr));
      sr = await sha256(concat(Uint8Array.of(1), c, sr));
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      sr = await sha256(concat(Uint8Array.of(1), sr, c));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0 || !same(fr, first.root) || !same(sr, second.root)) {
    throw new Error("the later log does not extend the earlier one");
  }
}

async function checkLog(vkey) {
  const signatures = Array.from(document.querySelectorAll("[data-signature]"));
  const links = Array.from(document.querySelectorAll("[data-consistency]"));
  if (!signatures.length) return;
  const verifier = await verifierKey(vkey);
  const notes = await getJson(`/console/data/checkpoints${logQuery("?")}`);
  const opened = [];
  for (const [i, cell] of signatures.entries()) {
    try {
      opened[i] = await openNote(notes[i].note, verifier);
      mark(cell, true, "signed by the key");
    } catch (error) {
      mark(cell, false, `failed: ${error.message}`);
    }
  }
  for (const cell of links) {
    const i = Number(cell.dataset.index);
    try {
      if (!opened[i - 1] || !opened[i]) throw new Error("a checkpoint's signature failed");
      const { proof } = await getJson(
        `/console/data/consistency?from=${opened[i - 1].size}&to=${opened[i].size}${logQuery("&")}`);
      await checkConsistency(opened[i - 1], opened[i], proof.map(fromBase64));
      mark(cell, true, `extends the log of ${opened[i - 1].size}`);
    } catch (error) {
      mark(cell, false, `failed: ${error.message}`);
    }
  }
}

// RFC 9162 section 2.1.3.2: the root an inclusion proof leads to from a leaf hash.
async function rootFromProof(index, size, leafHash, proof) {
  if (index >= size) throw new Error("the leaf is outside the tree");
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) throw new Error("the proof is too long");
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the proof is too short");
  return r;
}

async function proveInclusion(position, checkpoint) {
  const found = await getJson(
    `/console/data/proof/${position}?size=${checkpoint.size}${logQuery("&")}`);
  const leafHash = await sha256(concat(Uint8Array.of(0), fromBase64(found.leaf)));
  const root = await rootFromProof(found.index, checkpoint.size, leafHash,
    found.proof.map(fromBase64));
  if (!same(root, checkpoint.root)) throw new Error("the record does not lead to the signed root");
}

function mark(cell, ok, words) {
  cell.textContent = words;
  cell.classList.remove("unchecked");
  cell.classList.add(ok ? "verified" : "failed");
}

async function checkPage() {
  const meta = document.querySelector('meta[name="ledger-verifier"]');
  if (!meta || !meta.content) {
    document.querySelectorAll(".proof.unchecked").forEach(
      (c) => mark(c, false, "not checked: the console has no public key"));
    return;
  }
  await checkLog(meta.content);
  const cells = Array.from(document.querySelectorAll("[data-proof]"));
  if (!cells.length) return;
  let checkpoint;
  try {
    checkpoint = await signedCheckpoint(meta.content);
  } catch (error) {
    cells.forEach((c) => mark(c, false, `failed: ${error.message}`));
    return;
  }
  for (const cell of cells) {
    try {
      await proveInclusion(cell.dataset.position, checkpoint);
      const signed = checkpoint.whole ? ", under the whole ledger's signed checkpoint" : "";
      mark(cell, true, `verified in the log of ${checkpoint.size}${signed}`);
    } catch (error) {
      mark(cell, false, `failed: ${error.message}`);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  checkPage().finally(() => { document.body.dataset.proofs = "done"; });
});
