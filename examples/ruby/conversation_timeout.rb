# frozen_string_literal: true

# A Slack-bot style conversation timeout: every message a user sends in a
# channel (re)arms a key with a TTL; when the key expires, Redis publishes a
# keyevent and the bot closes the conversation ("Are you still there?").
#
# The same psubscribe / on.pmessage shape as redis-rb, plus what redis-rb
# cannot tell you: on.gap fires after a reconnect, when expirations may have
# been missed, so the bot re-checks its open conversations.
#
#   ruby conversation_timeout.rb                 # REDIS_URL, default localhost
#   redis-cli PUBLISH slack:incoming 'C042 U7 hello'   # a user talks
#
# Keyspace notifications are hints: Redis fires "expired" when it deletes
# the key, which can lag behind the TTL on a busy server. For timeouts that
# must be on time, schedule them on a Reactis::Queue instead (see
# handlers.rb: q.schedule(..., id: key, delay: TIMEOUT) and q.reschedule).

require "reactis"

url = ENV.fetch("REDIS_URL", "redis://localhost:6379/0")
TIMEOUT = Integer(ENV.fetch("CONVERSATION_TIMEOUT", "300"))
Reactis.logger.level = Logger::INFO

begin
  Reactis.enable_keyspace_events(url, "Ex") # keyevent + expired
rescue Reactis::ConfigForbiddenError => e
  # Managed Redis (Heroku, ElastiCache) forbids CONFIG; the message says how
  # to turn notifications on there.
  warn e.message
end

redis = Reactis::Client.new(url)
open_conversations = {} # "conv:C042:U7" => true; a real bot keeps this in its DB

def say(redis, channel, text)
  # A real bot calls chat.postMessage; here the reply goes to a channel.
  redis.publish("slack:outgoing", "#{channel} #{text}")
  puts "-> #{channel}: #{text}"
end

# Incoming Slack events, simulated as "CHANNEL USER TEXT" on slack:incoming.
listener = Thread.new do
  inbox = Reactis::Subscriber.new(url, encoding: "UTF-8")
  inbox.subscribe("slack:incoming")
  inbox.each_message do |msg|
    channel, user, text = msg.data.split(" ", 3)
    next unless text
    key = "conv:#{channel}:#{user}"
    redis.command("SET", key, text, "EX", TIMEOUT) # (re)arms the timeout
    open_conversations[key] = true
    puts "<- #{channel} #{user}: #{text}"
  end
end

sub = Reactis::Subscriber.new(url, encoding: "UTF-8")
trap("TERM") { sub.stop }
trap("INT") { sub.stop }
puts "waiting for conversations to time out (#{TIMEOUT} s); Ctrl-C stops"

sub.psubscribe("__keyevent@*__:expired") do |on|
  on.pmessage do |_pattern, _channel, key|
    next unless key.start_with?("conv:") && open_conversations.delete(key)
    _, channel, user = key.split(":", 3)
    say(redis, channel, "<@#{user}> are you still there? I'll close this conversation.")
  end

  on.gap do |gap|
    # Reconnected: expirations during the gap were not delivered. Re-check
    # every conversation we think is open: a missing key has expired.
    warn "missed events for #{gap.gap_duration.round(1)} s; re-checking"
    open_conversations.keys.each do |key|
      next unless redis.command("EXISTS", key).zero?
      open_conversations.delete(key)
      _, channel, user = key.split(":", 3)
      say(redis, channel, "<@#{user}> this conversation timed out.")
    end
  end
end

listener.kill
sub.close
redis.close
puts "bye"
