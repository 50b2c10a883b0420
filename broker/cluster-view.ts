// What a broker knows of the cluster around it: its id, the cluster id, the live brokers and who
// leads each partition. On a single node this is the node itself; with the controller quorum the
// metadata image answers the same questions.
export interface BrokerInfo {
  nodeId: number;
  host: string;
  port: number;
  rack: string;
  roles: string[];
  httpEndpoint: string;
  state: 'active' | 'fenced' | 'shutting_down';
}

export interface ClusterView {
  readonly clusterId: string;
  readonly selfId: number;
  controllerId(): number;
  brokers(): BrokerInfo[];
}

export class SingleNodeCluster implements ClusterView {
  constructor(
    readonly clusterId: string,
    private readonly self: BrokerInfo,
  ) {}

  get selfId(): number {
    return this.self.nodeId;
  }

  controllerId(): number {
    return this.self.nodeId;
  }

  brokers(): BrokerInfo[] {
    return [this.self];
  }

  setState(state: BrokerInfo['state']): void {
    this.self.state = state;
  }
}
