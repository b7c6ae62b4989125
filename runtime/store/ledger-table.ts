// No imports on purpose: the Pulumi program creates the table from this constant without loading
// the DynamoDB client.

/** The table the Pulumi program creates: exactly the keys this code uses, no indexes. */
export const LEDGER_TABLE = {
  hashKey: 'pk',
  rangeKey: 'sk',
  attributes: [
    { name: 'pk', type: 'S' },
    { name: 'sk', type: 'S' },
  ],
  /** Epoch seconds after which DynamoDB's TTL deletes an item (remembered response sizes). */
  ttlAttribute: 'ttl',
} as const;
