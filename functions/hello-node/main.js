'use strict';
// The Node.js hello: OpenWhisk style, main(params) returning an object.

function main(params) {
  const name = params.name || 'world';
  console.log(`greeting ${name}`);
  return { greeting: `Hello, ${name}!` };
}

module.exports.main = main;
