import { InMemoryStateStore } from '../../src/adapters/state-store/in-memory-state-store.js';
import { describeStateStoreContract } from './state-store.contract.js';

describeStateStoreContract('InMemoryStateStore', async () => ({
  open: async () => new InMemoryStateStore(),
  dispose: async () => undefined,
}));
