import { loadConfig, type FactoryConfig } from '../config/load.js';
import { createLogger } from '../adapters/logging/pino-logger.js';
import { createRuntime, type Runtime } from '../main.js';
import { flagString, type ParsedArgs } from './args.js';

export function configFromArgs(args: ParsedArgs): FactoryConfig {
  return loadConfig(flagString(args, 'config'));
}

export function runtimeFromArgs(args: ParsedArgs): Runtime {
  return createRuntime(configFromArgs(args), createLogger());
}
