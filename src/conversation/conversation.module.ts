import { type DynamicModule, Module } from '@nestjs/common';
import { type AppRole, consumesJobs } from '../app-role';
import { BspModule } from '../bsp/bsp.module';
import { CostsModule } from '../costs/costs.module';
import { DedupModule } from '../dedup/dedup.module';
import { EscalationDeskModule } from '../escalation/escalation.module';
import { LlmModule } from '../llm/llm.module';
import { QueueModule } from '../queue/queue.module';
import { ClinicActions } from '../actions/clinic-actions';
import { McpTools } from '../actions/mcp-tools';
import { ActionRounds } from './action-rounds';
import { AgentTurnService } from './agent-turn.service';
import { ApiSendTurn } from './api-send-turn';
import { ChatTurnService } from './chat-turn.service';
import { DeadLetters } from './dead-letters';
import { DeskLaneService } from './desk-lane.service';
import { HandoverPlanner } from './handover-planner';
import { LaneRunner } from './lane-runner';
import { LlmStep } from './llm-step';
import { OutboundRecords } from './outbound-records';
import { Reengagement } from './reengagement';
import { RedisConversationStore } from './redis-conversation.store';
import { RedisOutboundRecords } from './redis-outbound-records';
import { ReplySender } from './reply-sender';
import { StatusLaneService } from './status-lane.service';
import { Sweeper } from './sweeper';
import { TurnProcessor } from './turn.processor';

@Module({})
export class ConversationModule {
  /** The turn machinery exists only where jobs are consumed (worker, all). */
  static forRole(role: AppRole): DynamicModule {
    if (!consumesJobs(role)) return { module: ConversationModule };
    return {
      module: ConversationModule,
      imports: [QueueModule, DedupModule, LlmModule, BspModule, EscalationDeskModule, CostsModule],
      providers: [
        RedisConversationStore.provider('worker'),
        ChatTurnService,
        AgentTurnService,
        ApiSendTurn,
        Reengagement,
        { provide: OutboundRecords, useClass: RedisOutboundRecords },
        HandoverPlanner,
        DeskLaneService,
        LlmStep,
        McpTools,
        ClinicActions,
        ActionRounds,
        ReplySender,
        StatusLaneService,
        DeadLetters,
        LaneRunner,
        Sweeper,
        TurnProcessor,
      ],
    };
  }
}
