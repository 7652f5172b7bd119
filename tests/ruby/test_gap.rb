# frozen_string_literal: true

require_relative "helper"

# After a redis-server restart the subscriber reconnects, resubscribes and
# says which window may have been missed.
class TestGap < ReactisTest
  def test_gap_after_restart
    redis = server
    sub = closing(Reactis::Subscriber.new(redis.url, reconnect_min: 0.05, reconnect_max: 0.2,
                                                      health_check_interval: 1))
    sub.subscribe("events")
    client = closing(Reactis::Client.new(redis.url))
    client.publish("events", "before")
    assert_equal "before", sub.next_message(timeout: 5).data

    t_down = Time.now
    redis.restart(downtime: 0.3)
    gap = sub.next_message(timeout: 10)
    refute_nil gap, "no gap event after the restart"
    assert gap.gap?
    assert_equal :gap, gap.kind
    assert_operator gap.reconnects, :>=, 1
    assert_operator gap.gap_end_ms, :>=, gap.gap_start_ms
    assert_operator gap.gap_start, :<=, t_down + 0.5
    assert_operator gap.gap_end, :>=, t_down
    assert_operator gap.gap_duration, :>=, 0.2

    # Subscriptions are back: a new publish arrives. (The client's own link
    # died with the server: its next command may report that, then it
    # reconnects; the library never resends a command by itself.)
    begin
      client.publish("events", "probe")
    rescue Reactis::ConnectionLostError
      nil
    end
    client.publish("events", "after")
    # ("probe" may arrive first, when its publish went through.)
    msg = sub.each_message(timeout: 2).find { |m| m.data == "after" }
    refute_nil msg, "the subscription did not come back"
  end

  def test_gap_in_block_form
    redis = server
    sub = closing(Reactis::Subscriber.new(redis.url, reconnect_min: 0.05, reconnect_max: 0.2))
    gaps = []
    restarter = nil
    sub.psubscribe("x.*") do |on|
      on.gap do |gap|
        gaps << gap
        sub.stop
      end
      on.pmessage { |*| nil }
      restarter = Thread.new do
        sleep 0.1
        redis.restart(downtime: 0.2)
      end
    end
    restarter.join
    assert_equal 1, gaps.size
    assert gaps.first.gap?
  end
end
