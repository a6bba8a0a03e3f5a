'use strict';
// Lambda style: exports.handler = async (event, context).
const { transform } = require('./transform');

exports.handler = async (event, context) => {
  const records = transform(event);
  console.log(`kept ${records.length} of ${event.records.length} records`);
  return { count: records.length, records, activation: context.awsRequestId };
};
