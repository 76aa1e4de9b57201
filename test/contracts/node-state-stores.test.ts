import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileHeartbeatStore, FileRegistryStore } from '../../src/adapters/node-state/file-node-state.js';
import { InMemoryHeartbeatStore, InMemoryRegistryStore, NodeStateCell } from '../../src/adapters/node-state/in-memory-node-state.js';
import { describeNodeStateContract } from './node-state-store.contract.js';

describeNodeStateContract('heartbeat and registry files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'factory-node-state-'));
  const [heartbeatPath, registryPath] = [join(dir, 'state', 'heartbeat.json'), join(dir, 'state', 'registry.json')];
  return {
    heartbeats: new FileHeartbeatStore(heartbeatPath),
    heartbeatReader: new FileHeartbeatStore(heartbeatPath),
    registry: new FileRegistryStore(registryPath),
    registryReader: new FileRegistryStore(registryPath),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});

describeNodeStateContract('in memory', async () => {
  const [heartbeat, registry] = [new NodeStateCell(), new NodeStateCell()];
  return {
    heartbeats: new InMemoryHeartbeatStore(heartbeat),
    heartbeatReader: new InMemoryHeartbeatStore(heartbeat),
    registry: new InMemoryRegistryStore(registry),
    registryReader: new InMemoryRegistryStore(registry),
    dispose: async () => undefined,
  };
});
