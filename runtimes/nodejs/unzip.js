'use strict';
// A zip extractor over the central directory with zlib.inflateRawSync: stored and
// deflated members, zip64 sizes, no npm dependencies (see proxy.js).

const fs = require('fs');
const path = require('path');

/** The code is not a zip (or not base64) this extractor can read: the client's fault. */
class ZipError extends Error {}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** Where the central directory starts and how many entries it has. */
function centralDirectory(data) {
  const lowest = Math.max(0, data.length - 22 - 0xffff);
  for (let at = data.length - 22; at >= lowest; at -= 1) {
    if (data.readUInt32LE(at) !== EOCD) continue;
    let entries = data.readUInt16LE(at + 10);
    let offset = data.readUInt32LE(at + 16);
    const locator = at - 20;
    if (locator >= 0 && data.readUInt32LE(locator) === EOCD64_LOCATOR) {
      const record = Number(data.readBigUInt64LE(locator + 8));
      if (record + 56 > data.length) throw new ZipError('binary code: bad zip64 record');
      entries = Number(data.readBigUInt64LE(record + 32));
      offset = Number(data.readBigUInt64LE(record + 48));
    }
    return { entries, offset };
  }
  throw new ZipError('binary code is not a zip archive: no end of central directory');
}

/** The zip64 sizes and offset of an entry whose 32-bit fields are saturated. */
function zip64Fields(extra, fields) {
  let at = 0;
  while (at + 4 <= extra.length) {
    const id = extra.readUInt16LE(at);
    const size = extra.readUInt16LE(at + 2);
    if (id === 1) {
      let pos = at + 4;
      for (const key of ['size', 'compressed', 'offset']) {
        if (fields[key] === 0xffffffff && pos + 8 <= at + 4 + size) {
          fields[key] = Number(extra.readBigUInt64LE(pos));
          pos += 8;
        }
      }
    }
    at += 4 + size;
  }
  return fields;
}

/** A member name as a safe relative path: no root, no '..', as Python's zipfile does. */
function safeName(name) {
  const parts = name.replace(/\\/g, '/').split('/');
  return parts.filter((p) => p && p !== '.' && p !== '..').join('/');
}

/** Extract a zip (stored and deflated members) into dest with zlib.inflateRawSync. */
function extractZip(data, dest) {
  let { entries, offset } = centralDirectory(data);
  for (let i = 0; i < entries; i += 1) {
    if (offset + 46 > data.length || data.readUInt32LE(offset) !== CENTRAL) {
      throw new ZipError('binary code is not a zip archive: bad central directory');
    }
    const method = data.readUInt16LE(offset + 10);
    const nameLength = data.readUInt16LE(offset + 28);
    const extraLength = data.readUInt16LE(offset + 30);
    const commentLength = data.readUInt16LE(offset + 32);
    const rawName = data.toString('utf8', offset + 46, offset + 46 + nameLength);
    const extra = data.subarray(offset + 46 + nameLength, offset + 46 + nameLength + extraLength);
    const fields = zip64Fields(extra, {
      compressed: data.readUInt32LE(offset + 20),
      size: data.readUInt32LE(offset + 24),
      offset: data.readUInt32LE(offset + 42),
    });
    offset += 46 + nameLength + extraLength + commentLength;
    const name = safeName(rawName);
    if (!name) continue;
    const target = path.join(dest, name);
    if (rawName.endsWith('/')) {
      fs.mkdirSync(target, { recursive: true, mode: 0o700 });
      continue;
    }
    const local = fields.offset;
    if (local + 30 > data.length || data.readUInt32LE(local) !== LOCAL) {
      throw new ZipError(`binary code: bad local header for ${rawName}`);
    }
    const start = local + 30 + data.readUInt16LE(local + 26) + data.readUInt16LE(local + 28);
    const packed = data.subarray(start, start + fields.compressed);
    let content;
    if (method === 0) content = packed;
    else if (method === 8) {
      try {
        content = require('zlib').inflateRawSync(packed);
      } catch (err) {
        throw new ZipError(`binary code: cannot inflate ${rawName}: ${err.message}`);
      }
    } else throw new ZipError(`binary code: ${rawName} uses unsupported compression ${method}`);
    if (content.length !== fields.size) {
      throw new ZipError(`binary code: ${rawName} is truncated or corrupt`);
    }
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
    fs.writeFileSync(target, content, { mode: 0o600 });
  }
}

function decodeBase64(code) {
  const text = code.replace(/\s+/g, '');
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new ZipError('binary code is not valid base64');
  }
  return Buffer.from(text, 'base64');
}

module.exports = { ZipError, decodeBase64, extractZip };
